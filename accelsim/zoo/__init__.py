"""The paper's networks (LeNet-5, MLP-7, AlexNet), trained, quantised and loadable by name."""
