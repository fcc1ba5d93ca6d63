from medsight.cli import main

raise SystemExit(main())
