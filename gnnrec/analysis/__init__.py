"""Analysis of finished runs: comparisons with confidence intervals and paired significance tests
(``compare``, ``stats``), modality attribution (``ablate``), plots (``plots``) and the single-page HTML report
(``html_report``)."""
