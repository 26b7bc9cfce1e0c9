from svcinspect.entry import console

if __name__ == "__main__":
    console()
