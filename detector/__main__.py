from detector.launcher import main

main()
