"""Built-in workloads, usable by short name as a study's ``objective``.

* ``digits`` (:mod:`objectives.digits`): a small CNN on scikit-learn's 8x8 handwritten
  digits; metric ``accuracy`` (maximise).
* ``charlm`` (:mod:`objectives.charlm`): a 2-layer byte-level transformer language model on
  Python standard-library source; metric ``val_bpc`` in bits per byte (minimise).
* ``digits32`` (:mod:`objectives.digits32`): a small ResNet on the digits upsampled to 32x32,
  as map-style Datasets that augment every training image on the CPU, so the DataLoader's
  workers matter; metric ``accuracy`` (maximise).

All need no download and train a trial in seconds on one CPU thread. Each module exposes a
``WORKLOAD`` (see :mod:`tuner.workload`) and a ``GPU_WORKLOAD``, the same task with a network
sized for a data-centre GPU (``size = "gpu"`` in a study); importing one loads no data and
builds no model, so listing them is cheap. The names are mapped in ``tuner.workload.BUILTIN``.
"""
