from provenance.client.cli import main

main()
