from detector.cli import main_entry

main_entry()
