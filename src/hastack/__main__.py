from hastack.cli import main

main()
