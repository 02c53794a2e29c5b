"""Evaluation of hala_exp models: translation quality (sacrebleu BLEU / chrF++ on named test sets) and Arabic
benchmarks (lighteval, the six the Hala report averages), with local variants of both for offline runs.

Modules: ``testsets`` (parallel test sets from local files or the hub), ``paired`` (test sets joined from two
datasets on a key), ``scoring`` (scores and the files that let the ``sacrebleu`` CLI reproduce them),
``local_tasks`` (converting benchmark files into the layout lighteval's built-in Arabic tasks read),
``benchmarks`` (the lighteval runner, the average, and the six-benchmark mean for the paper's six on hub data).
"""
