"""The six handlers of the user-creation flow, the shared app factory, event catalog and stores."""
