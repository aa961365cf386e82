# crabby UController board script (MicroPython): a cheap DAQ on a Raspberry Pi Pico,
# an ESP32 or a pyboard, read by crabby_hardware::serial::UController.
#
# Copy it onto the board as main.py (e.g. `mpremote cp crabby_ucontroller.py :main.py`),
# then edit the ACQUISITION section. The simulated board of crabby's tests
# (hardware/src/serial/ucontroller/sim.rs) behaves as this script does.
#
# Protocol: Crappy's UController (crappy/blocks/ucontroller.py and the template
# crappy/tool/microcontroller.py, LaboratoireMecaniqueLille/crappy):
#   host -> board  "go<X><Y>\r\n", then X lines "<i><command name>" and Y lines
#                  "<i><label name>" (label "t(s)", index 0: send the board's clock)
#   host -> board  "<i><value>\r\n": sets the variable named by command i
#   board -> host  struct '<bf' (label index, float32), or '<ibf' (ticks_ms, index,
#                  float32) when "t(s)" was asked
#   host -> board  "stop!\r\n": the board resets and waits for "go" again
# Unlike Crappy's template, this script also accepts a new "go" while it streams (a host
# that restarted, or UController::recover_resets after a silence), and ignores lines it
# cannot use instead of stopping on them.
#
# Written for crabby; not a copy of Crappy's template.

import math
import sys

import machine
import select
import struct
import utime

_poll = select.poll()
_poll.register(sys.stdin, select.POLLIN)
_out = sys.stdout.buffer

# ----- ACQUISITION: the variables the host may set (its cmd_labels) -----
freq = 1.0     # Hz, of the sine
amp = 1.0      # amplitude of the sine
rate = 100.0   # samples per second
# ------------------------------------------------------------------------

commands = {}   # index -> variable name
labels = {}     # label name -> index
send_t = False


def _line(timeout_ms):
    """One stripped line from the host, or None after timeout_ms."""
    if _poll.poll(timeout_ms):
        return sys.stdin.readline().strip()
    return None


def handshake(first):
    """Reads the tables announced by a 'goXY' line."""
    global send_t
    try:
        n_cmd, n_lab = int(first[2]), int(first[3])
    except (IndexError, ValueError):
        return False
    table = []
    while len(table) < n_cmd + n_lab:
        value = _line(500)
        if value is None:
            return False
        if value:
            table.append(value)
    commands.clear()
    labels.clear()
    for k, value in enumerate(table):
        if k < n_cmd:
            commands[int(value[0])] = value[1:]
        else:
            labels[value[1:]] = int(value[0])
    send_t = 't(s)' in labels
    return True


def send(name, value, t_ms):
    """Sends one frame if the host asked for this label."""
    idx = labels.get(name)
    if idx is None:
        return
    if send_t:
        _out.write(struct.pack('<ibf', t_ms, idx, value))
    else:
        _out.write(struct.pack('<bf', idx, value))


def acquire(t_ms, count):
    """ACQUISITION: one sample of every label this board can send.

    Replace with your own readings, e.g. an ADC:
        adc = machine.ADC(26)   (at the top of the script)
        send('volts', adc.read_u16() * 3.3 / 65535, t_ms)
    """
    send('sine', amp * math.sin(2 * math.pi * freq * t_ms / 1000), t_ms)
    send('count', count, t_ms)


# Wait for the host.
while True:
    msg = _line(50)
    if msg and msg.startswith('go') and handshake(msg):
        break

count = 0
next_due = utime.ticks_ms()
while True:
    msg = _line(0)
    if msg == 'stop!':
        machine.reset()
    elif msg and msg.startswith('go'):
        handshake(msg)
        next_due = utime.ticks_ms()
    elif msg:
        name = commands.get(ord(msg[0]) - ord('0'))
        try:
            value = float(msg[1:])
        except ValueError:
            name = None
        if name is not None:
            globals()[name] = value
            if name == 'rate':
                next_due = utime.ticks_ms()
    now = utime.ticks_ms()
    if rate > 0 and utime.ticks_diff(now, next_due) >= 0:
        acquire(next_due, count)
        count += 1
        next_due = utime.ticks_add(next_due, max(1, int(1000 / rate)))
        if utime.ticks_diff(now, next_due) > 1000:
            next_due = now   # fell behind by a second: no burst
