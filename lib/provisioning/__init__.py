"""Provisioning from console.toml: the file declares the network volume and the three endpoints;
the console plans the difference to RunPod (REST v2), applies it on an operator's confirmation,
checks that every model the workflows and training presets need is on the volume, uploads missing
ones, and documents the live configuration.

  declaration.py  what console.toml declares (validated; secrets only by name)
  plan.py         declared vs live, field by field, with the monthly cost of min-worker changes
  apply.py        the plan as steps: create, PATCH, write new ids back; stops at the first error
  bind.py         writing the ids RunPod gave into console.toml, keeping the file as it is
  required.py     the model files each template and preset needs, and their state on the volume
  upload.py       multipart uploads that resume from the parts already on the volume
  docs.py         the live configuration as Markdown, for the team's records
  service.py      the same for one console (Services): authorization, audit, fresh console.toml
"""
