"""Image labels from Google Cloud Vision: the study's JSON label file and the annotator."""
