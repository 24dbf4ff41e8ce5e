// placeholder: the Store suite
