"""Post images: downloading, synthetic pictures, streaming to Keras, the feature cache."""
