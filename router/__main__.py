from router.daemon.cli import main

raise SystemExit(main())
