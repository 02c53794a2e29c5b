"""Supervised fine-tuning with Lightning: chat rendering and loss masks, packing, data plans, the module,
callbacks, the fit/export routine and the subprocess worker for multi-device fits.

Every module here imports torch / transformers / Lightning inside functions or is only imported by the
train stage's ``run``, so composing a config stays instant.
"""
