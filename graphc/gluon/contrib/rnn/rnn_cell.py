"""contrib.rnn.rnn_cell: dynamic_unroll, a cell run over a merged sequence with contrib.foreach."""
from ...rnn.rnn_cell import LSTMPCell, VariationalDropoutCell, _as_list, _format_sequence  # noqa: F401


def dynamic_unroll(cell, inputs, begin_state, drop_inputs=0, drop_outputs=0, layout='TNC', valid_length=None):
    """Run `cell` over every step of `inputs` (one array in `layout`, 'TNC' or 'NTC') inside one foreach loop.
    Returns (outputs in `layout`, final states). drop_inputs / drop_outputs: dropout shared over the time axis.
    valid_length (N,): each sequence's states stop changing after its last valid step and its outputs past it
    are zero (MXNet's SequenceMask)."""
    inputs, axis, F, _ = _format_sequence(0, inputs, layout, True)
    if axis != 0:  # foreach walks axis 0
        axes = list(range(len(layout)))
        axes[0], axes[axis] = axes[axis], axes[0]
        inputs = F.transpose(inputs, axes=axes)
    states = list(_as_list(begin_state))
    if drop_inputs:
        inputs = F.Dropout(inputs, p=drop_inputs, axes=(axis,))
    if valid_length is None:
        def body(x, states):
            return cell(x, states)
    else:
        states.append(F.zeros((1,)))  # the step counter rides along as an extra state

        def body(x, states):
            cell_states, step = states[:-1], states[-1]
            out, new = cell(x, cell_states)
            alive = F.broadcast_greater(valid_length, step)
            new = [F.where(alive, n, s) for n, s in zip(_as_list(new), cell_states)]
            return out, new + [step + 1]
    outputs, states = F.contrib.foreach(body, inputs, states)
    if drop_outputs:
        outputs = F.Dropout(outputs, p=drop_outputs, axes=(axis,))
    if axis != 0:
        outputs = F.transpose(outputs, axes=axes)
    if valid_length is None:
        return outputs, states
    outputs = F.SequenceMask(outputs, sequence_length=valid_length, use_sequence_length=True, axis=axis)
    return outputs, states[:-1]
