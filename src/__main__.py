from jobcast.cli.main import main

main()
