from plasticity.cli import main

raise SystemExit(main())
