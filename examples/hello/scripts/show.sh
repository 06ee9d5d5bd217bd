#!/bin/sh
cat /greeting.txt /app/message.txt
