"""Greetings, built work package by work package."""
