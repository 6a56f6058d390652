"""DALL·E mini in PyTorch: text → image tokens → pixels (the maths; the process around it is generator/).

text             dalle-mini's text normalizer
tokenizer        the BART tokenizer (the checkpoint's own vocab), 64 tokens
tokenizer_files  reading the published tokenizer files
config           DalleBartConfig, VQGanConfig from config.json; unsupported variants refused by name
layers           LayerNorm, Attention, GLU and the fastest CPU linear
encoder          DalleBart's text encoder
decoder          DalleBart's image-token decoder, one token per sequence per step
bart             the two together
sampler          continuous batching: rows join and leave between steps; SamplingSettings
vqgan            taming's VQGAN decoder: 256 codes → a 256 × 256 picture
checkpoints      download once, read flax msgpack, convert and cache as safetensors, strict loading
flax_format      flax msgpack without JAX
precision        the CPU fast mode: reduced decoder weights, a bfloat16 VQGAN
dalle            DalleMini: the model loaded once (tokens, decode, render)
grid             pictures → a grid PNG
errors           CheckpointError and its kinds
"""
