"""`task verify`: render every Helm release of the synthesized stacks with its real chart and check the platform
as one system before anything is deployed.

  plan.py     what cdktf.out holds: releases, namespaces, Terraform-made Secrets, stack order, Kubernetes version
  charts.py   the chart at its pinned version (HELIX_CHARTS folder, or pulled into a cache) and repository indexes
  render.py   `helm template` with the release's own values, in parallel; the chart's defaults for unknown-value
  kube.py     Kubernetes facts: schemas of the configured version, CRD schemas, pod templates, Pod Security
  rules.py    one named class per rule (render, unknown-value, schema, reference, order, conflict, image,
              pod-security, published)
  allow.py    the allow list (config/verify-allow.yaml): accepted findings, each with its reason
  output.py   one line per finding, a summary line, or --json
"""
