"""An image in, predictions out: the model layer. No Flask, no pages.

``predictor`` is the contract every backend meets (``Predictor``, ``Prediction``); ``loader`` picks a
backend from the model file and holds it once per process; ``fastai_backend`` (torch) and
``onnx_backend`` (ONNX Runtime, no torch) run it on ``transforms``' preprocessing; ``heatmaps`` and
``cam`` say where it looked. ``onnx_export``, ``quantize`` and ``positives`` turn a fastai export into
ONNX and int8 and check them; ``snakenet`` is the default network and the one ``train`` fine-tunes.
Imports the imaging layer and the package's settings and exceptions, nothing above.
"""
