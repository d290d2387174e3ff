"""pytest runs the notebooks (nbval) but not their jupytext sources in src/: importing one
(``--doctest-modules``) would execute the whole notebook at collection time."""

collect_ignore_glob = ["src/*.py"]
