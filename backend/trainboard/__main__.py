"""`python -m trainboard` is `trainboard`."""

from trainboard.cli import main

raise SystemExit(main())
