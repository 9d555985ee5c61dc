"""Evaluation, torch-free: what an engine answers on labelled images, how right it is, and how far two engines
answer apart. Kept apart from the runtimes (cosa_edge.engines), as Polygraphy keeps its comparator apart from its
backends: every engine, and the training side's predictions, are scored by the same code.

- :mod:`.masks`: a lesion probability map at the source image's size, and its mask (the one place this is done);
- :mod:`.engine_outputs`: an engine run over samples (:class:`EngineOutputs`);
- :mod:`.accuracy`: Dice, mIoU, accuracy and AUC against the ground truth (:class:`EngineAccuracy`);
- :mod:`.comparison`: two engines on the same images (:class:`Agreement`), and an INT8 engine's
  :class:`Fidelity` to its FP32 model with the build-time limits.
"""
