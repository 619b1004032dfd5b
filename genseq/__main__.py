from genseq.cli import main

main(prog_name="genseq")
