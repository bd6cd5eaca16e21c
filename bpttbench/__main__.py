from bpttbench.cli import main

main()
