"""localpod: the offline double of RunPod Serverless (job API, REST v2, billing, a volume folder).

Start it with `python -m lib.localpod --data DIR` or in-process with
`lib.localpod.server.LocalPod(data_dir, config).start()`.
"""
