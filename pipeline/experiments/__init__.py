"""Benchmarks and studies that drive the pipeline; none is a DVC stage of this project.

``bench*`` (``make bench``: throughput and latency, printed), ``bench_classify`` (the classifier recipe ablation),
``scarcity`` (``make benchmark``: the pipeline once per k), ``screen`` (variants of the scarcity grid on val),
``scaling`` + ``scaling_report`` (the scaling study) and ``gpu_check`` (``make gpu-check``). Each runs as
``python -m pipeline.experiments.<module>``; they lay out work folders with ``pipeline.tools.run`` and read the
stages' outputs, and no stage imports them.
"""
