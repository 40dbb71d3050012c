"""Rendering results: the self-contained HTML page (:mod:`.html`, :mod:`.render`), its figures
(:mod:`.plots`) and face tiles (:mod:`.face_tiles`), every terminal table (:mod:`.tables`) and
the gates' JUnit XML (:mod:`.junit`). Nothing here computes a metric."""
