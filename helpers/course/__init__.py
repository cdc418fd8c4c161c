"""Apart from the library, on top of it: the course's own tooling.

- :mod:`~helpers.course.notebooks`  chapters/ from solutions/, running the course, affected chapters
- :mod:`~helpers.course.launch`     the launch cell (Colab, Binder, a clone) of every chapter
- :mod:`~helpers.course.results`    recording a chapter's key results and checking their bands
- :mod:`~helpers.course.exercises`  the exercise checks, hints and questionnaires of each chapter
"""
