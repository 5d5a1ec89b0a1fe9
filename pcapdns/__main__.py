from pcapdns.cli import main

main()
