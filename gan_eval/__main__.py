from gan_eval.cli import main

main()
