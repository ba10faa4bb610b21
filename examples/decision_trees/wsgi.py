import predictor as myapp

# A thin wrapper so gunicorn finds the app ("wsgi:app"). To serve a different algorithm file,
# change "predictor" above to that module's name.

app = myapp.app
