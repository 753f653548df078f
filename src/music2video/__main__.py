from music2video.cli import main

main()
