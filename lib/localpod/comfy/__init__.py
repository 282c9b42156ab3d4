"""The simulated ComfyUI behind worker-comfyui: node definitions, /prompt validation, execution, images."""
