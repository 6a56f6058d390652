"""The generator process: claims jobs fairly, draws them with DALL·E mini, posts the results.

serve         python -m generator.serve: settings → database → the model, loaded once → Worker.run
worker        Worker: the supervised tasks (render, deliver, registry, wake-ups, side tasks)
scheduler     RenderLoop: claim → admit rows → step → decode → store (continuous batching)
engine        the sampler behind the small interface the render loop needs
delivery      Deliverer: posts finished jobs and progress through bot/posters.py
housekeeping  retention and /metrics + /healthz side tasks
dbretry       riding out database outages
testing       tiny random checkpoints in the published layout (python -m generator.testing make-tiny)
__main__      python -m generator render: the model alone, no queue
model/        DALL·E mini itself (text, tokenizer, encoder, decoder, sampler, VQGAN, checkpoints)
"""
