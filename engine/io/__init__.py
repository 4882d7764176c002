"""Reading and writing data: clips (one frame-seeking reader), images, catalogues and their editing, the demo."""
