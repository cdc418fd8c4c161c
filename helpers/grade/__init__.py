"""``python -m helpers.grade``: grading a class, the command INSTRUCTORS.md and ``make grade``
name. The grader itself lives in :mod:`helpers.course.grade` (with the sandbox and the judge);
this package is only its command, the one layer above ``course``, so that nothing imports it."""
