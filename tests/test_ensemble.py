"""The ensemble model (likepred/models/ensemble.py): its weight grid, its fit on val rows, its checks."""

from __future__ import annotations

import numpy as np
import pytest

from likepred.errors import ConfigError

FAST = ["+model.overrides.gbm.max_iter=30", "trainer.epochs=1", "trainer.batch_size=256"]


def test_simplex_grid():
    from likepred.models.ensemble import simplex

    g = simplex(3, 0.25)
    assert len(g) == 15 and np.allclose(g.sum(axis=1), 1) and (g >= 0).all()
    assert [1.0, 0.0, 0.0] in g.tolist() and len(simplex(2, 0.05)) == 21


@pytest.mark.slow
def test_ensemble_fits_weights_on_val_and_round_trips(make_cfg, tmp_path):
    import pickle

    from test_models import prepared

    from likepred.models import build_model
    from likepred.models.ensemble import loss

    cfg = make_cfg("model=ensemble", *FAST)
    data, pipe, train, val, test = prepared(cfg)
    est = build_model(cfg)
    scores = est.fit(train, val)
    w = est.weights_
    assert np.isclose(w.sum(), 1) and (w >= 0).all() and scores["weight_gbm"] == pytest.approx(w[0])
    # every single member is a grid point, so the mix is at least as good on val as the best member
    singles = [loss("mape", val.y, np.asarray(m.predict(val), float)[:, None])[0] for m in est.members]
    assert loss("mape", val.y, est.predict(val)[:, None])[0] <= min(singles) + 1e-9
    logs = np.log([np.maximum(np.asarray(m.predict(test), float), 1e-9) for m in est.members])  # as it clips
    assert np.allclose(est.predict(test), np.exp(w @ logs))
    # packaged as every estimator is: pickled without weights, which save/load carry
    est.save(tmp_path)
    back = pickle.loads(pickle.dumps(est))
    back.load(tmp_path, cfg.backend)
    assert np.allclose(back.predict(test), est.predict(test), rtol=1e-5)
    assert "keras" in est.requirements()


def test_ensemble_members_are_checked_before_data(make_cfg):
    from likepred.checks import check

    check(make_cfg("model=ensemble", "model.members=[gbm,gbm]", "+model.overrides.gbm.max_iter=5"))
    with pytest.raises(ConfigError, match="best_constant predict likes"):
        check(make_cfg("model=ensemble", "model.members=[gbm,best_constant]"))
    with pytest.raises(ConfigError, match="'gbmm' is not a model an ensemble can hold"):
        check(make_cfg("model=ensemble", "model.members=[gbmm]"))
    with pytest.raises(ConfigError, match="model.overrides.gbm.max_iters: unknown key"):
        check(make_cfg("model=ensemble", "+model.overrides.gbm.max_iters=5"))
    with pytest.raises(ConfigError, match="cnn_meta reads the input block"):
        check(make_cfg("model=ensemble", "model.members=[gbm,cnn_meta]"))
