from casematch.cli import main

main()
