"""localpod: the offline double of RunPod Serverless (job API, REST v2, billing, a volume folder) and of
the workers behind it (worker-comfyui with ComfyUI's real node definitions, the project's trainer).

Start it with `python -m lib.localpod --data DIR` or in-process with
`lib.localpod.server.LocalPod(data_dir, config).start()`. It imports nothing from the console:
see docs/architecture.md, "The simulator stands alone".
"""
