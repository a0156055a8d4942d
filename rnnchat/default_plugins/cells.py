"""The built-in cells: plain RNN, LSTM and GRU."""

from rnnchat.plugins import CellSpec, hookimpl


@hookimpl
def register_cells(register):
    register(CellSpec("rnn", "rnnchat.engine.cells:RNNCell",
                      "Elman RNN: h' = tanh(W_x x + W_h h + b); option nonlinearity='relu'"))
    register(CellSpec("lstm", "rnnchat.engine.cells:LSTMCell",
                      "LSTM: input, forget and output gates and a cell state"))
    register(CellSpec("gru", "rnnchat.engine.cells:GRUCell",
                      "GRU: reset and update gates"))
