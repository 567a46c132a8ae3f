"""On the real profiles (LIKEPRED_REAL_DATA; skipped without it)."""

import pytest

from likepred.data import load_dataset
from likepred.features.metadata import read_ranking

pytestmark = pytest.mark.realdata


def test_real_profiles_read_clean(make_cfg, real_data_dir):
    cfg = make_cfg("data=profiles", f"data.path={real_data_dir}", tiny=False)
    data = load_dataset(cfg.data)
    assert data.skipped == 0 and len(data.posts) > 1000
    assert (data.users["followers"] < 1_000_000).all() and not data.posts["multiple_image"].any()
    assert (data.posts["likes"] > 0).all()
    young = data.posts["date"] > data.scrape_date - __import__("pandas").Timedelta(days=2)
    assert not young.any()


def test_top_hashtags_ranking_reads(real_data_dir):
    tags = read_ranking(real_data_dir.parent / "top-hashtags.txt")
    assert len(tags) == 10000 and tags[0] == "love"


def test_hashtag_score_matches_real_tags(make_cfg, real_data_dir):
    """The scraped tags keep their '#': they must still find the top-10k list (issue 14)."""
    from likepred.features.metadata import HashtagScore

    data = load_dataset(make_cfg("data=profiles", f"data.path={real_data_dir}", tiny=False).data)
    assert data.posts["tags"].map(lambda ts: any(t.startswith("#") for t in ts)).any()
    score = HashtagScore(str(real_data_dir.parent / "top-hashtags.txt")).fit(data.posts).transform(data.posts)
    tagged = data.posts["tags"].map(len).to_numpy() > 0
    assert (score["log_hashtag_score"].to_numpy()[tagged] > 0).mean() > 0.3


@pytest.mark.slow
def test_default_model_beats_the_study_yardstick(make_cfg, real_data_dir):
    """Leak-free: the default net beats each user's train mean (the study's yardstick) on later posts."""
    from likepred.train import train

    cfg = make_cfg("data=profiles", f"data.path={real_data_dir}", "trainer.verbose=0", "tracking.enabled=false",
                   tiny=False)
    m = train(cfg)
    assert m["test_mape"] < m["baseline_user_mean_mape"] - 3
    assert m["baseline_best_constant_mape"] < m["baseline_user_mean_mape"]
