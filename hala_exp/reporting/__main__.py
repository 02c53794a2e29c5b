"""``python -m hala_exp.reporting <sweep dir | run dirs...>``: see ``hala_exp.reporting.report``."""

import sys

from hala_exp.reporting.report import main

if __name__ == "__main__":
    sys.exit(main())
