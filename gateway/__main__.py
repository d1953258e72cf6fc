from tollgate.gateway.cli import main

raise SystemExit(main())
