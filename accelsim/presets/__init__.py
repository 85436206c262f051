"""Built-in architecture and workload YAML files, installed with the package.

``arch/NAME.yaml`` and ``workloads/NAME.yaml`` here are what ``load_arch("NAME")`` and
``load_workload("NAME")`` read when no file of that name exists; the source tree's top-level
``arch/`` and ``workloads/`` folders are links to these folders.
"""
