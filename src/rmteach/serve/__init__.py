"""`rmteach serve-rm`: any loaded reward model behind HTTP: `config` (ServeConfig), `app` (the endpoints), `cli`."""
