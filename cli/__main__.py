from cli.lab import main

main()
