import sys

from imcpnn.cli import main

sys.exit(main())
