from pirlctl.cli.app import main

main()
