"""`snakes-web train`: a folder of photos in, a fastai export (and its ONNX files) out."""
