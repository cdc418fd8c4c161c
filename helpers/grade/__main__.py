"""``python -m helpers.grade SUBMISSIONS --out FOLDER ...``: :func:`helpers.course.grade.main`
(``-h`` lists the options)."""
import sys

from helpers.course.grade import main

if __name__ == "__main__":
    sys.exit(main())
