"""COSA region maps: the numpy/OpenCV reference (the spec), the CUDA kernel and its TensorRT plugin."""
